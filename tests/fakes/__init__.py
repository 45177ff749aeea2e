"""Local fakes of the vendor HTTP APIs (loopback only), driven by the real vendor clients."""
