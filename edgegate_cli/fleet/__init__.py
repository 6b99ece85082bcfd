"""The fleet: devices, their certificates and enrolment (SPEC §10.2)."""
