_base_ = ['./qkvsyn.py']
train_dataloader = dict(dataset=dict(track='cyclic'))
val_dataloader = dict(dataset=dict(track='cyclic'))
test_dataloader = dict(dataset=dict(track='cyclic'))
