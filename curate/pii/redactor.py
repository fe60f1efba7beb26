class PiiRedactor: pass
