"""ctlog-bench: benchmark harness comparing Trillian (CTFE) and TesseraCT CT logs."""
