"""wattwise: keep a data center's power chain and its workloads healthy together."""

__version__ = "0.1.0"
