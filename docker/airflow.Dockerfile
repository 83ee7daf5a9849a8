# The scimflow image: Airflow 3.3 with the scimflow package, from the same lock as CI.
FROM python:3.11-slim-bookworm

ENV AIRFLOW_HOME=/opt/airflow \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 50000 --home-dir /opt/airflow airflow

WORKDIR /opt/scimflow
COPY requirements.lock pyproject.toml README.md ./
COPY include ./include
RUN pip install --no-cache-dir "uv==0.13.9" \
 && uv pip sync --system --no-cache requirements.lock \
 && uv pip install --system --no-cache --no-deps .

COPY --chown=airflow dags /opt/airflow/dags
COPY --chown=airflow plugins /opt/airflow/plugins
USER airflow
WORKDIR /opt/airflow
