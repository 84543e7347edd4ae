package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.EvenPlacement;
import java.util.List;
import org.junit.jupiter.api.Test;

class PlacementMessagesTest {

    @Test
    void toDomain_ofALayerPast2To31_isRefusedNamingItUnsigned_notAnIndexOutOfBounds() {
        Placement good = EvenPlacement.build(3, List.of(Instance.newBuilder().setId("expert-0")
                .setEndpoint("127.0.0.1:1").build()), 4, 8, false, 1);
        // uint32 4294967295 reads as -1 in Java
        Placement bad = good.toBuilder().setLayers(2, good.getLayers(2).toBuilder().setLayer(-1)).build();
        assertThatThrownBy(() -> PlacementMessages.toDomain(bad, 4, 8)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("placement epoch 3 places layer 4294967295, the model has 4");
    }
}
