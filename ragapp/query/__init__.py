"""The query side: from a question to an answer with numbered sources.

retriever.py  dense, MMR or hybrid top-k over the store, each hit with its cosine score
keyword.py    the derived search index: BM25 and best-window vectors
prompts.py    the grounded-answer instructions and the numbered passages
chain.py      LCEL: condense a follow-up, retrieve, fit the context, generate, cite
citations.py  which [n] an answer cites, and attributing uncited sentences
"""
