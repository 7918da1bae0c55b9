"""Inspection of tikflow's configuration: sources, masking, validation and reference docs."""
