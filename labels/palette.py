"""The paper's colour-coded mask palette (docs/METHOD.md section 3.1).

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

# Further colours for label maps with more than nine labels (automatic segmentation). Every
# channel is 0, 128, 192 or 255 and no two are alike; each lies at least 32 levels (0-255
# scale) away from every blend of two paper colours, past the 25.5 tolerance (tested), so the
# paper's anti-aliased masks decode exactly as with the nine colours alone.
EXTENDED_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("yellowgreen", (0x80, 0xC0, 0x00)),
    ("seagreen", (0x00, 0xC0, 0x80)),
    ("brown", (0xC0, 0x80, 0x00)),
    ("peach", (0xFF, 0xC0, 0x80)),
    ("violet", (0x80, 0x00, 0xC0)),
    ("pink", (0xFF, 0x80, 0xC0)),
    ("steelblue", (0x00, 0x80, 0xC0)),
    ("raspberry", (0xC0, 0x00, 0x80)),
    ("paleblue", (0x80, 0xC0, 0xFF)),
    ("palegreen", (0xC0, 0xFF, 0x80)),
    ("lavender", (0xC0, 0x80, 0xFF)),
    ("mint", (0x80, 0xFF, 0xC0)),
)
# Label i is drawn in, and decoded from, colour i of this palette.
MASK_PALETTE = PAPER_PALETTE + EXTENDED_COLOURS

# A pixel belongs to a colour when every channel is within this distance (0-1 scale);
# the published masks are anti-aliased, so edge pixels match no colour.
COLOUR_TOLERANCE = 0.1
