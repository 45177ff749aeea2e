-- Runs once, when the Postgres volume is first initialised (docker-entrypoint-initdb.d): the
-- databases besides POSTGRES_DB (dagster). MLflow's tracking store and its basic-auth app's
-- users and permissions each get their own database.
CREATE DATABASE mlflow;
CREATE DATABASE mlflow_auth;
