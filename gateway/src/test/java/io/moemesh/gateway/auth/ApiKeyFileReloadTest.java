package io.moemesh.gateway.auth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A running gateway follows its key file, a Kubernetes Secret volume the kubelet updates by swapping its
 * {@code ..data} symlink: a changed file's keys replace the served ones; a file that cannot be read or that startup
 * would refuse keeps the last good keys (auth neither opened up nor everyone locked out) and counts the failure.
 */
class ApiKeyFileReloadTest {
    @TempDir
    Path mount;

    private ApiKeyFileReload reload;

    @AfterEach
    void close() {
        if (reload != null) {
            reload.close();
        }
    }

    @Test
    void secretUpdatedByTheKubelet_revokedKeyRefused_newKeyAccepted_withinTheReloadPeriod() throws IOException {
        KubeletSecretVolume volume = new KubeletSecretVolume(mount);
        volume.project("api-keys", "leaked-key team-a\nother-key team-b\n");
        reload = ApiKeyFileReload.start(volume.file("api-keys"), null, Duration.ofSeconds(1));
        ApiKeys keys = reload.keys();
        assertThat(keys.tenantOf("leaked-key")).contains("team-a");

        volume.project("api-keys", "new-key team-a\nother-key team-b\n");

        await().atMost(Duration.ofSeconds(20)).untilAsserted(() -> {
            assertThat(keys.tenantOf("leaked-key")).isEmpty();
            assertThat(keys.tenantOf("new-key")).contains("team-a");
        });
        assertThat(keys.tenantOf("other-key")).contains("team-b");
        assertThat(reload.reloads()).isOne();
        assertThat(reload.failures()).isZero();
    }

    @Test
    void unchangedFile_isNotLoadedAgain() throws IOException {
        KubeletSecretVolume volume = new KubeletSecretVolume(mount);
        volume.project("api-keys", "key-1 team-a\n");
        reload = ApiKeyFileReload.start(volume.file("api-keys"), null, Duration.ZERO);
        // The same content in a new projection (the kubelet re-projects on every change of the Secret's metadata too).
        volume.project("api-keys", "key-1 team-a\n");

        reload.reloadIfChanged();

        assertThat(reload.reloads()).isZero();
        assertThat(reload.keys().tenantOf("key-1")).contains("team-a");
    }

    @Test
    void fileThatBecomesMalformed_keepsTheLastGoodKeys_andCountsEveryFailedPeriod() throws IOException {
        KubeletSecretVolume volume = new KubeletSecretVolume(mount);
        volume.project("api-keys", "key-1 team-a\n");
        reload = ApiKeyFileReload.start(volume.file("api-keys"), null, Duration.ZERO);
        volume.project("api-keys", "key-2 team-a extra-field\n");

        reload.reloadIfChanged();
        reload.reloadIfChanged();

        assertThat(reload.keys().tenantOf("key-1")).as("the last good keys still serve").contains("team-a");
        assertThat(reload.keys().tenantOf("key-2")).isEmpty();
        assertThat(reload.failures()).isEqualTo(2);
        assertThat(reload.reloads()).isZero();

        // Fixed: taken at the next period.
        volume.project("api-keys", "key-2 team-a\n");
        reload.reloadIfChanged();
        assertThat(reload.keys().tenantOf("key-2")).contains("team-a");
        assertThat(reload.keys().tenantOf("key-1")).isEmpty();
        assertThat(reload.reloads()).isOne();
    }

    @Test
    void fileLeftWithoutAnyKey_keepsTheLastGoodKeys_neverTurnsAuthOff() throws IOException {
        KubeletSecretVolume volume = new KubeletSecretVolume(mount);
        volume.project("api-keys", "key-1 team-a\n");
        reload = ApiKeyFileReload.start(volume.file("api-keys"), null, Duration.ZERO);
        volume.project("api-keys", "# key-1 team-a\n");

        reload.reloadIfChanged();

        assertThat(reload.keys().enabled()).isTrue();
        assertThat(reload.keys().tenantOf("key-1")).contains("team-a");
        assertThat(reload.failures()).isOne();
    }

    @Test
    void keyRemovedFromTheSecret_fileUnreadable_keepsTheLastGoodKeys() throws IOException {
        KubeletSecretVolume volume = new KubeletSecretVolume(mount);
        volume.project("api-keys", "key-1 team-a\n");
        reload = ApiKeyFileReload.start(volume.file("api-keys"), null, Duration.ZERO);
        volume.projectWithout("api-keys");
        assertThat(Files.exists(volume.file("api-keys"))).as("the key's symlink dangles").isFalse();

        reload.reloadIfChanged();

        assertThat(reload.keys().tenantOf("key-1")).contains("team-a");
        assertThat(reload.failures()).isOne();
    }

    @Test
    void inlineKeys_stayServedAcrossAReload() throws IOException {
        KubeletSecretVolume volume = new KubeletSecretVolume(mount);
        volume.project("api-keys", "key-1 team-a\n");
        reload = ApiKeyFileReload.start(volume.file("api-keys"), "inline-key:team-c", Duration.ZERO);
        volume.project("api-keys", "key-2 team-b\n");

        reload.reloadIfChanged();

        assertThat(reload.keys().tenantOf("key-2")).contains("team-b");
        assertThat(reload.keys().tenantOf("key-1")).isEmpty();
        assertThat(reload.keys().tenantOf("inline-key")).contains("team-c");
    }

    @Test
    void reloadPeriodBelowOneSecond_isRefused_namingTheProperty() {
        assertThatThrownBy(() -> ApiKeyFileReload.start(null, null, Duration.ofMillis(500)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.api-keys-reload-period").hasMessageContaining("PT0.5S");
    }
}
