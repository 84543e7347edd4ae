package io.moemesh.e2e;

import io.moemesh.model.golden.TestModels;

class MixtralTinyBf16MeshTest extends GoldenMeshTestBase {
    @Override
    String model() {
        return TestModels.MIXTRAL_BF16;
    }
}
