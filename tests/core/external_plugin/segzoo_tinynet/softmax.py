"""A plugin that wraps `postprocess` for every model: scores become class probabilities."""

import segzoo


class SoftmaxScores:
    @segzoo.hookimpl(wrapper=True)
    def postprocess(self, model_name, config, outputs):
        import paddle.nn.functional as F

        scores = yield
        return F.softmax(scores, axis=1)
