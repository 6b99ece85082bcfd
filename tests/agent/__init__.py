"""Tests of the edge agent (SPEC §10.3): real `edgegate agent serve` processes on 127.0.0.1, real mutual TLS."""
