"""The SAM Segment Editor effect (Qt side): options, mouse interaction, prompt markers, dependencies."""
