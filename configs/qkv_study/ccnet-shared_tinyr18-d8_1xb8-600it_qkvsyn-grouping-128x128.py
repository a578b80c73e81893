_base_ = ['../_base_/qkvsyn-grouping_tinyr18-d8_600it.py']
model = dict(
    decode_head=dict(
        attention=dict(
            _delete_=True,
            type='QKVCrissCrossAttention',
            qkv_mode='shared',
            recurrence=2)))
