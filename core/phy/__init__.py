"""The numpy OFDM PHY, torch-free (imported by the GNU Radio process too): grid, pilots,
sync, channel estimation, equaliser and the PHY header."""
