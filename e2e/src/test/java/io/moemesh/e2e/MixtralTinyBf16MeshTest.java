package io.moemesh.e2e;

import io.moemesh.cli.mesh.MeshTransport;
import io.moemesh.model.golden.TestModels;

/**
 * The golden matrix with the gateway reaching the instances over Unix domain sockets ({@code unix:///...}
 * endpoints), as {@code moemesh up} runs on Linux: the same tokens as over TCP (the other golden meshes).
 */
class MixtralTinyBf16MeshTest extends GoldenMeshTestBase {
    @Override
    String model() {
        return TestModels.MIXTRAL_BF16;
    }

    @Override
    MeshTransport transport() {
        return MeshTransport.UNIX;
    }
}
