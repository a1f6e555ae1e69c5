"""Per-language data tables of the chat generator (`training.datasets.chat`).

Each module defines LANGUAGE; TEMPLATES (kind -> template strings; kinds "positive", "negative",
"neutral" and the shared frames "any" and "polar"); LEXICON (sentiment words, shared by all
splits: pos_/neg_/neu_ adj, np, excl, verb; neg_of_neg and neg_of_pos for negated phrases;
intens); FILLERS (slot -> {"train": [...], "heldout": [...]}); ARTICLES (slot -> gender -> word);
PROTECTED (negators that typos must not touch) and optionally fix(text) (elision, "a" -> "an").

Template slots: any LEXICON, FILLERS or ARTICLES key; {dj} {dj2} {track} {artist} {time} {user}
(common.py); {pos_emo} {neg_emo} {neu_emo}; {n} {mins} {sec}. Shared frames use {adj} {np} {excl}
{emo} {verb} {negd}, which the line's label resolves ({adj} -> pos_adj / neg_adj / neu_adj, {negd}
-> neg_of_neg / neg_of_pos). Nouns carry their gender as "f:mezcla"; adjectives agree through
"m|f" forms ("buenísimo|buenísima"); {g_f} marks a feminine subject that is not a {noun}.
"""

from training.datasets.chat_lang import de, en, es, fr, it, pt

LANGUAGES = {m.LANGUAGE: m for m in (es, en, pt, fr, de, it)}
