"""The customer portal (Flask). For now a landing page; the portal issue builds
sign-up, plans, payment and space administration here."""

from __future__ import annotations

from flask import Flask

from spaces.settings import Settings


def create_app(settings: Settings) -> Flask:
    app = Flask(__name__)
    app.config["RESGUARDO_SETTINGS"] = settings

    @app.get("/")
    def home() -> tuple[str, int, dict[str, str]]:
        base = settings.base_url()
        html = f"""<!doctype html><html lang="es"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Resguardo</title></head><body style="font-family:sans-serif;max-width:40em;margin:2em auto">
<h1>Resguardo</h1>
<p>Su unidad de red para archivos contables y CFDI.</p>
<p>Conecte su unidad en Windows con la dirección <code>{base}/dav/&lt;su-espacio&gt;/</code>.</p>
</body></html>"""
        return html, 200, {"Content-Type": "text/html; charset=utf-8"}

    return app
