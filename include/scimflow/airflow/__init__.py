"""Airflow glue: the only part of scimflow that imports Airflow.

DAG files call these helpers from task bodies; nothing here runs at DAG parse time.
"""
