"""What a measurement is: sweep points and settings, rounds and rows, gates and
baselines, reports."""
