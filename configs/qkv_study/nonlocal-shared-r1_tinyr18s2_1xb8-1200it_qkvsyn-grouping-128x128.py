# Parameter-matched control: one shared projection widened to 64 channels
# (reduction=1): 8,384 parameters in the layer against 8,416 for 'separate'.
_base_ = ['../_base_/qkvsyn-grouping_tinyr18s2_1200it.py']
model = dict(
    decode_head=dict(
        attention=dict(type='QKVNonLocal2d', qkv_mode='shared',
                       reduction=1)))
