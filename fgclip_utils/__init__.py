"""fgclip study helpers."""
