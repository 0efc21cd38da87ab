"""The paper's colour-coded mask palette (METHOD.md section 3).

Shared by the mask reader, the segmenter's colour output and the demo's mask editor.
"""

# Order is the label order: colour i decodes to label i.
PAPER_PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("blue", (0x00, 0x00, 0xFF)),
    ("green", (0x00, 0xFF, 0x00)),
    ("black", (0x00, 0x00, 0x00)),
    ("white", (0xFF, 0xFF, 0xFF)),
    ("red", (0xFF, 0x00, 0x00)),
    ("yellow", (0xFF, 0xFF, 0x00)),
    ("grey", (0x80, 0x80, 0x80)),
    ("lightblue", (0x00, 0xFF, 0xFF)),
    ("purple", (0xFF, 0x00, 0xFF)),
)

# A pixel belongs to a colour when every channel is within this distance (0-1 scale);
# the published masks are anti-aliased, so edge pixels match no colour.
COLOUR_TOLERANCE = 0.1
