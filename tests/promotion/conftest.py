from tests.research.conftest import swept, year_home  # noqa: F401 (shared session fixtures)
