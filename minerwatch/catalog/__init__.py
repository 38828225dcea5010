"""Data the engine is driven by: table catalogue, GuardDuty finding types, botocore shapes."""
