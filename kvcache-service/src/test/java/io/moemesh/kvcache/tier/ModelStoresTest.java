package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelStoresTest {
    @TempDir
    Path dir;

    @Test
    void findsAStoreByModelOrFingerprint_andRefuseAnUnknownOneNamingTheField() {
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(dir, 1 << 20), LAYOUT, TestBlocks.MODEL, new LruPolicy());
        TieredKvStore store = new TieredKvStore(LAYOUT, 1 << 16, new LruPolicy(), ssd, AdmissionPolicy.ADMIT_ALL,
                System::nanoTime);
        try (ModelStores stores = new ModelStores(List.of(new ModelStores.Served("olmoe", TestBlocks.MODEL,
                store)))) {
            assertThat(stores.forModel("olmoe").store()).isSameAs(store);
            assertThat(stores.forFingerprint(TestBlocks.MODEL).model()).isEqualTo("olmoe");
            assertThatThrownBy(() -> stores.forModel("mixtral"))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("model: \"mixtral\" is not served here; served: [olmoe]");
            assertThatThrownBy(
                    () -> stores.forFingerprint(TestBlocks.fingerprint(7)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("is not served here");
        }
    }
}
