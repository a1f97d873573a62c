"""Pull-request CI: read two repository states, diff them, judge the gate, write the report."""
