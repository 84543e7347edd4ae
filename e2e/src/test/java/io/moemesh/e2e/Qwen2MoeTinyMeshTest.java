package io.moemesh.e2e;

import io.moemesh.model.golden.TestModels;

class Qwen2MoeTinyMeshTest extends GoldenMeshTestBase {
    @Override
    String model() {
        return TestModels.QWEN2_MOE;
    }
}
