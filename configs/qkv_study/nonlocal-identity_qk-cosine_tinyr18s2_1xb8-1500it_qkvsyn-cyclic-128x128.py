# No Q/K projection (Q = K = the features), V projected, cosine logits: raw
# cosine with V's projection kept (the factorial's "projecting V" contrast).
_base_ = ['../_base_/qkvsyn-cyclic_tinyr18s2_1500it.py']
model = dict(
    decode_head=dict(
        attention=dict(
            type='QKVNonLocal2d',
            qkv_mode='identity_qk',
            similarity='cosine')))
