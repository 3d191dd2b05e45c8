"""Drop repeated <script> entries from every page.

Jupyter Book 1 with Sphinx 7 registers sphinx-thebe's inline configuration script
twice; the second `const THEBE_JS_URL` then throws "Identifier has already been
declared" in the browser console. Keeping the first of identical scripts fixes it.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", None) or {}
        # inline scripts come with filename None or "" for the same body: key on the body
        key = ("inline", attributes["body"]) if "body" in attributes else (str(getattr(script, "filename", script)),
                                                                         repr(attributes))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
