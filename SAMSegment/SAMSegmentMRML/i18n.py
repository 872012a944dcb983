"""``tr`` for the texts the glue shows the user: Slicer's translation in Slicer; the text itself
headless (the slicer-core wheel has no translations). Import ``tr`` itself, never wrap it: Slicer's
``tr`` finds its translation context from its caller's file."""

try:
    from slicer.i18n import tr
except ImportError:

    def tr(text: str) -> str:
        return text


__all__ = ["tr"]
