"""The real-time path: Okta events on Kafka → micro-batches → every target.

:mod:`~scimflow.stream.events` says which entity an Okta event concerns (the Kafka key),
:mod:`~scimflow.stream.kafka` reads bounded micro-batches with manually committed offsets
and publishes events, :mod:`~scimflow.stream.batch` hydrates, validates and applies a
batch per target. The ``okta_events`` and ``okta_catchup`` DAGs call these functions;
``scimflow stream once`` runs one batch without Airflow.
"""
