_base_ = ['../_base_/qkvsyn-cyclic_tinyr18s2_1500it.py']
model = dict(
    decode_head=dict(
        attention=dict(type='QKVDisentangledNonLocal2d', qkv_mode='separate')))
