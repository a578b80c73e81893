# Raw cosine similarity: no projection, cosine logits.
_base_ = ['../../_base_/qkvsyn-cyclic_tinyr18s2_time_to_solve.py']
model = dict(
    decode_head=dict(
        attention=dict(type='QKVNonLocal2d', qkv_mode='identity',
                       similarity='cosine')))
