-- Airflow's metadata database beside scimflow's state store, on the same server.
CREATE DATABASE airflow;
