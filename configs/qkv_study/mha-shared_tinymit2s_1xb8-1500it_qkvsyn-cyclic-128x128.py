_base_ = ['../_base_/qkvsyn-cyclic_tinymit2s_1500it.py']
model = dict(
    backbone=dict(
        qkv_mode='shared'))
