"""Airflow integration. The only part of ``sanitizer`` that imports Airflow."""
