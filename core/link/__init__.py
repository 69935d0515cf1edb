"""Link formats, torch-free (imported by the GNU Radio process too): the PHY frame format, the
messages between processes, ZeroMQ endpoints and CurveZMQ security."""
