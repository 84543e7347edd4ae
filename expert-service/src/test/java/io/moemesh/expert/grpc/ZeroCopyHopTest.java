package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.expert.support.TestCertificates;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.grpc.HopBufferPool;
import io.moemesh.service.grpc.TensorCodec;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Both ends of the hop zero-copy (the gateway's {@link GrpcInstanceClient}, the expert-service's ExpertBatch
 * marshallers) compute exactly what the generated protobuf client gets from the same instance, bit for bit, for
 * both wire dtypes; and no pool chunk stays out.
 */
class ZeroCopyHopTest extends PlacedInstanceTestBase {

    @ParameterizedTest
    @CsvSource({"DTYPE_F32, 1", "DTYPE_F32, 7", "DTYPE_BF16, 1", "DTYPE_BF16, 7"})
    void zeroCopyClient_getsTheGeneratedClientsOutputs_bitForBit(DType wire, int tokens) throws Exception {
        Random r = new Random(tokens * 13L + wire.getNumber());
        float[] x = new float[tokens * H];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        // Layer 0, experts 0 and 2: held by expert-0 under the even placement.
        int[] counts = new int[tokens];
        int[] experts = new int[2 * tokens];
        float[] weights = new float[2 * tokens];
        for (int t = 0; t < tokens; t++) {
            counts[t] = 2;
            experts[2 * t] = 0;
            experts[2 * t + 1] = 2;
            weights[2 * t] = 0.25f + r.nextFloat();
            weights[2 * t + 1] = 0.25f + r.nextFloat();
        }
        ExpertBatchRequest.Builder generated = ExpertBatchRequest.newBuilder().setBatchId(Requests.nextId())
                .setPlacementEpoch(EPOCH).setLayer(0).setActivations(TensorCodec.encode(x, 0, tokens, H, wire))
                .setOutputDtype(wire);
        for (int t = 0; t < tokens; t++) {
            generated.addTokenExpertCounts(2).addExperts(0).addExperts(2)
                    .addWeights(weights[2 * t]).addWeights(weights[2 * t + 1]);
        }
        float[] expected;
        try (BatchClient stub = new BatchClient(channel)) {
            ExpertBatchResponse reply = stub.call(generated.build());
            assertThat(reply.hasStatus()).as("%s", reply.getStatus()).isFalse();
            expected = Requests.outputs(reply, tokens, H);
        }

        try (GrpcInstanceClient client = new GrpcInstanceClient("expert-0", "127.0.0.1:" + grpcServer.port(),
                TestCertificates.as("gateway"), wire, 64 << 20)) {
            float[] got = client.call(new ExpertCall(EPOCH, 0, x, tokens, H, counts, experts, weights))
                    .get(30, TimeUnit.SECONDS);
            assertThat(got).containsExactly(expected);
        }
        await().until(() -> HopBufferPool.shared().outstanding() == 0);
    }
}
