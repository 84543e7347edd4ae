package io.moemesh.e2e;

import io.moemesh.model.golden.TestModels;

class MixtralTinyMeshTest extends GoldenMeshTestBase {
    @Override
    String model() {
        return TestModels.MIXTRAL;
    }
}
