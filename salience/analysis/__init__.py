"""Design analysis on predicted densities: regions of interest, attention shares, rendering."""
