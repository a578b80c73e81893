# GCNet's global context block (mmseg's GCHead structure) in the study head.
_base_ = ['../_base_/qkvsyn-grouping_tinyr18s2_1200it.py']
model = dict(
    decode_head=dict(
        attention=dict(_delete_=True, type='QKVContextBlock', ratio=1 / 4.)))
