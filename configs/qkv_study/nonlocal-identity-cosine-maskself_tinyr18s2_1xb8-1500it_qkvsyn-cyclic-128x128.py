# Raw cosine similarity with each position's own key masked out.
_base_ = ['../_base_/qkvsyn-cyclic_tinyr18s2_1500it.py']
model = dict(
    decode_head=dict(
        attention=dict(
            type='QKVNonLocal2d',
            qkv_mode='identity',
            similarity='cosine',
            mask_self=True)))
