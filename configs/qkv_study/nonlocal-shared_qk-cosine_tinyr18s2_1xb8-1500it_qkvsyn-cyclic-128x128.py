# One projection for Q = K, cosine logits, the own key kept: the control of
# Reformer's masked row (nonlocal-shared_qk-cosine-maskself).
_base_ = ['../_base_/qkvsyn-cyclic_tinyr18s2_1500it.py']
model = dict(
    decode_head=dict(
        attention=dict(
            type='QKVNonLocal2d',
            qkv_mode='shared_qk',
            similarity='cosine')))
