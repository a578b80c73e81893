# Three projections, cosine logits with a learnt scale.
_base_ = ['../_base_/qkvsyn-cyclic_tinyr18s2_1500it.py']
model = dict(
    decode_head=dict(
        attention=dict(
            type='QKVNonLocal2d',
            qkv_mode='separate',
            similarity='cosine')))
