"""Dev stand-ins: local broker, API and CDN, synthetic data, the demo.

Never imported by ``defs/`` or ``lib/`` (an import-linter contract); what they need beyond the
runtime dependencies comes with the ``[demo]`` extra.
"""
