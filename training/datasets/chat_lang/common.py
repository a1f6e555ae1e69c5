"""Vocabularies shared by every language: emoji (sentiment lexicon) and the international fillers.

Fillers are partitioned: a "heldout" value never appears in a training or validation line, so the
held-out lines name DJs, tracks, artists, times and users the model has never read. Values are
chosen so that none is also an ordinary word in one of the six languages.
"""

from __future__ import annotations

# Sentiment lexicon: shared between splits (a model trained from scratch cannot know an emoji it
# has never seen). Neutral emoji keep "has an emoji" from meaning "has a sentiment".
EMOJI = {
    "positive": ["🔥", "🙌", "💯", "😍", "🤩", "👏", "💥", "🚀", "❤️", "🥳", "😎", "⚡", "🕺", "💃", "👌", "🎉", "🤯", "🫶"],
    "negative": ["🤮", "👎", "😴", "💤", "🥱", "😬", "🙄", "😒", "💩", "😤", "🤦", "😞", "🗑️", "😩", "🤢", "😑"],
    "neutral": ["🎧", "👋", "📍", "⏰", "🎶", "🤔", "📅", "🎵", "🙋", "📻", "🕘", "🎤", "📺", "🌎"],
}

# DJ names and @handles are built from name parts: wide variety, so a model learns that names
# carry no sentiment. Held-out names share no part with training names.
DJ_PREFIXES = ["DJ", "MC", "Selecta", "Kid", "Lady", ""]
_DJ_NAMES = {
    "train": [
        "Kairo", "Vee", "Luna", "Ray", "Tempo", "Nyx", "Orbit", "Vinyl", "Astra", "Maze", "Rico", "Zephyr",
        "Flux", "Sable", "Vortexx", "Groove", "Pixel", "Kobra", "Nando", "Yuki", "Teo", "Camila", "Tobias",
        "Amara", "Jules", "Nikolai", "Priya", "Mateo", "Ingrid", "Kenji", "Zola", "Bruno", "Sasha", "Omar",
        "Freya", "Diego", "Lina", "Marek", "Aiko", "Femi", "Rocco", "Hana", "Ilse", "Tariq", "Noor", "Kofi",
        "Elif", "Remy", "Anouk", "Baz", "Cyra", "Dex", "Juno", "Koa", "Lexx", "Milo", "Pax", "Quinn", "Rhea",
        "Sol", "Tao", "Vega", "Wren", "Xiomara", "Yara", "Zed",
    ],
    "heldout": ["Quasar", "Lumen", "Kodiak", "Moxie", "Fenna", "Ostra", "Ravi", "Tino", "Echo Rae", "Kaskade"],
}
SYLLABLES = [
    "ka", "ro", "mi", "zu", "ve", "la", "to", "ny", "ser", "dor", "ban", "kel", "tri", "mo", "sa", "quin", "lu",
    "fa", "ge", "pi", "ra", "xo", "bel", "vin", "tar", "zo", "ni", "del", "ma", "su", "ko", "ri", "an", "el", "or",
    "us", "ix", "em", "jo", "wa", "ul", "dre", "sky", "vo",
]
"""Parts of the invented training-side names (`training.datasets.chat.fillers`)."""
DJS = {side: [f"{p} {n}".strip() for n in names for p in DJ_PREFIXES] for side, names in _DJ_NAMES.items()}

_HANDLE_ENDS = ["", "_beats", "88", ".mp3", "_rave", "909", "x", "_bpm", "_303", ".vinyl"]
USERS = {side: [f"@{n.lower().replace(' ', '')}{e}" for n in names for e in _HANDLE_ENDS] for side, names in {
    "train": ["sofi", "marco", "lu", "bob", "kike", "ana", "tom", "jojo", "mila", "hugo", "nina", "pablo", "greta",
              "yusuf", "chloe", "dani", "ben", "ale", "rafa", "lea", "ivan", "maya", "sam", "carla"],
    "heldout": ["pedrito", "clara", "fred", "yasmin", "oli"],
}.items()}

# (track, artist): a line naming both keeps them paired. Partitioned by artist.
SONGS = {
    "train": [
        ("Strobe", "deadmau5"), ("Ghosts 'n' Stuff", "deadmau5"), ("I Remember", "deadmau5"), ("Opus", "Eric Prydz"),
        ("Pjanoo", "Eric Prydz"), ("Call on Me", "Eric Prydz"), ("Children", "Robert Miles"), ("Sandstorm", "Darude"),
        ("Insomnia", "Faithless"), ("God Is a DJ", "Faithless"), ("Da Funk", "Daft Punk"),
        ("Around the World", "Daft Punk"), ("Aerodynamic", "Daft Punk"), ("Robot Rock", "Daft Punk"),
        ("Born Slippy", "Underworld"), ("Rez", "Underworld"), ("Windowlicker", "Aphex Twin"), ("Xtal", "Aphex Twin"),
        ("Blue Monday", "New Order"), ("Levels", "Avicii"), ("Wake Me Up", "Avicii"), ("Animals", "Martin Garrix"),
        ("Cola", "CamelPhat"), ("Glue", "Bicep"), ("Apricots", "Bicep"), ("Atlas", "Bicep"),
        ("Innerbloom", "RÜFÜS DU SOL"), ("Breathe", "The Prodigy"), ("Voodoo People", "The Prodigy"),
        ("Out of Space", "The Prodigy"), ("Latch", "Disclosure"), ("White Noise", "Disclosure"),
        ("Adagio for Strings", "Tiësto"), ("Red Lights", "Tiësto"), ("Kernkraft 400", "Zombie Nation"),
        ("Titanium", "David Guetta"), ("Gecko", "Oliver Heldens"), ("Rej", "Âme"), ("Greyhound", "Swedish House Mafia"),
        ("San Frandisco", "Dom Dolla"), ("Turn Off the Lights", "Chris Lake"), ("Drive", "Black Coffee"),
        ("Grey", "Kölsch"), ("Singularity", "Stephan Bodzin"), ("Monument", "Tale Of Us"), ("Your Mind", "Adam Beyer"),
        ("Hypnotized", "Amelie Lens"), ("Sky and Sand", "Paul Kalkbrenner"), ("Porcelain", "Moby"), ("Go", "Moby"),
        ("Galvanize", "The Chemical Brothers"), ("Block Rockin' Beats", "The Chemical Brothers"),
        ("Where's Your Head At", "Basement Jaxx"), ("Romeo", "Basement Jaxx"), ("For an Angel", "Paul van Dyk"),
        ("Café del Mar", "Energy 52"), ("Punk", "Ferry Corsten"), ("Genesis", "Justice"), ("D.A.N.C.E.", "Justice"),
        ("Nightcall", "Kavinsky"), ("Crispy Bacon", "Laurent Garnier"), ("Ribcage", "Dubfire"),
        ("Ringo", "Joris Voorn"),
        ("Subzero", "Ben Klock"), ("Rainbow Delta", "Len Faki"), ("Baby", "Four Tet"),
        ("Silhouettes", "Floating Points"),
        ("Gosh", "Jamie xx"), ("Archangel", "Burial"), ("Fingerprint", "Lane 8"), ("Beyond Beliefs", "Ben Böhmer"),
        ("Rain", "Kerri Chandler"), ("The Whistle Song", "Frankie Knuckles"), ("Can You Feel It", "Mr. Fingers"),
        ("1999", "Cassius"), ("Eple", "Röyksopp"), ("Kerala", "Bonobo"), ("Cirrus", "Bonobo"),
        ("Blind Faith", "Chase & Status"), ("Tidal Wave", "Sub Focus"), ("Memory Lane", "Netsky"),
    ],
    "heldout": [
        ("Strings of Life", "Derrick May"), ("Energy Flash", "Joey Beltram"), ("The Bells", "Jeff Mills"),
        ("Sing It Back", "Moloko"), ("Gypsy Woman", "Crystal Waters"), ("Watercolour", "Pendulum"),
        ("Tarantula", "Pendulum"), ("Clarity", "Zedd"), ("Spastik", "Plastikman"),
        ("Right Here Right Now", "Fatboy Slim"), ("Rhythm Is a Dancer", "Snap!"),
    ],
}

# Held-out hours avoid the minute values of track timestamps ("ID at 20:15?"), which are generic.
TIMES = {
    "train": [
        "20:00", "20:30", "21:00", "21:30", "22:00", "22:15", "23:00", "23:45", "0:00", "1:30",
        "9pm", "10pm", "11pm", "20h", "22h", "21h30",
    ],
    "heldout": ["19:45", "19:10", "22:40", "23:20", "0:45", "1:50", "8pm", "11:30pm", "18h", "19h15"],
}
