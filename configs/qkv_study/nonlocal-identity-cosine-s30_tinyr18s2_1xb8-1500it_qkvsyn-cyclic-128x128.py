# Raw cosine similarity with its learnt logit scale started at 30 instead of
# 10: the temperature explanation (a sharper start) of raw cosine's result.
_base_ = ['../_base_/qkvsyn-cyclic_tinyr18s2_1500it.py']
model = dict(
    decode_head=dict(
        attention=dict(
            type='QKVNonLocal2d',
            qkv_mode='identity',
            similarity='cosine',
            cosine_init_scale=30.0)))
