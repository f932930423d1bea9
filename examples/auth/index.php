<?php
// The article's /auth/ test page, without phpinfo(): who does the web server say is
// logged in? Apache (SSLOptions +StdEnvVars) and nginx (snippets/getacert-params.conf)
// set the same variables. Copy to /var/www/auth/index.php.
$keys = ['SSL_CLIENT_VERIFY', 'SSL_CLIENT_S_DN_CN', 'SSL_CLIENT_S_DN', 'SSL_CLIENT_I_DN',
         'SSL_CLIENT_M_SERIAL', 'SSL_CLIENT_V_END', 'SSL_PROTOCOL'];
$ok = ($_SERVER['SSL_CLIENT_VERIFY'] ?? '') === 'SUCCESS';
header('Content-Type: text/html; charset=utf-8');
?>
<!DOCTYPE html>
<title>Certificate login test</title>
<?php if ($ok): ?>
<h1>Authenticated as <?= htmlspecialchars($_SERVER['SSL_CLIENT_S_DN_CN'] ?? '') ?></h1>
<?php else: ?>
<h1>Not authenticated</h1>
<p>No valid client certificate. <a href="/getacert.php">Get a certificate</a>, then come back.</p>
<?php endif ?>
<pre>
<?php foreach ($keys as $k): ?>
<?= $k ?>=<?= htmlspecialchars($_SERVER[$k] ?? '(unset)') ?>

<?php endforeach ?>
SSL_CLIENT_CERT=<?= empty($_SERVER['SSL_CLIENT_CERT']) ? '(unset)' : 'present' ?>

</pre>
