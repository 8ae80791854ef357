"""The model server (data plane): what the prepackaged images run. See docs/serving.md.

Entry point: `python -m modeldeck.serving --model-uri URI --port P --name NAME` (`cli.main`).
"""
