"""The book's boxes: a Sphinx admonition's HTML, the text alone as a string."""

from paradox_utils.admonition import Admonition


def test_an_admonition_is_the_themes_box_with_escaped_text():
    box = Admonition("warning", "Outside <the> paper's regime", "accuracy 0.70 < 0.85 & more")
    assert box._repr_html_() == ('<div class="admonition warning"><p class="admonition-title">Outside &lt;the&gt; '
                                 "paper&#x27;s regime</p><p>accuracy 0.70 &lt; 0.85 &amp; more</p></div>")
    assert str(box) == "accuracy 0.70 < 0.85 & more"
