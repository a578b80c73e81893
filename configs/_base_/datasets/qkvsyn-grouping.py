_base_ = ['./qkvsyn.py']
train_dataloader = dict(dataset=dict(track='grouping'))
val_dataloader = dict(dataset=dict(track='grouping'))
test_dataloader = dict(dataset=dict(track='grouping'))
