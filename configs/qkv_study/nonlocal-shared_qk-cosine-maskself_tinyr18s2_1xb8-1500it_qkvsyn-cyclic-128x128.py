# Reformer's shared-QK attention: Q = K, cosine logits, each position's own
# key masked out (it would otherwise win its own row).
_base_ = ['../_base_/qkvsyn-cyclic_tinyr18s2_1500it.py']
model = dict(
    decode_head=dict(
        attention=dict(
            type='QKVNonLocal2d',
            qkv_mode='shared_qk',
            similarity='cosine',
            mask_self=True)))
