<?php
// The article's getacert.php ("Adding Easy SSL Client Authentication To Any Webapp",
// step 5), run by php-fpm behind the same nginx as getacert, for scripts/bench/run.
//
// The page as the article prints it, line for line. The stored copy of the article lost a
// few lines around the PHP (the `<?php` tag, the `if` around the POST branch, the write of
// the SPKAC file and the final readfile); they are filled in here in the most literal way.
// What differs from the print, and why:
//  - the paths come from nginx (fastcgi_param ARTICLE_CONF / ARTICLE_DB / ARTICLE_TMP)
//    instead of /var/www/auth/ca/...;
//  - `emailAddress=` is left out when the address is empty: the article writes it empty
//    and OpenSSL 3 refuses the whole request ("string too short"), so the page as printed
//    issues nothing at all on a current system;
//  - Content-Length is the size of the .out file (the print takes filesize($uniqpath), the
//    empty tempnam() file, which would make every answer an empty 200);
//  - with ARTICLE_FLOCK=1, "the obvious flock fix": the reset and `openssl ca` run under an
//    exclusive flock() on ARTICLE_DB.lock, so parallel requests stop sharing serials.
// Everything else stays: the "reset CA DB" truncation of index.txt on every request, the
// shell_exec of `openssl ca`, no validation but whitespace, the constant challenge.

if (isset($_SERVER["SSL_CLIENT_S_DN_CN"]) && $_SERVER["SSL_CLIENT_VERIFY"] == "SUCCESS")
	//Should not happen since this should be in a directory that does not ask for client certificates
	die("You are already authenticated as ".$_SERVER["SSL_CLIENT_S_DN_CN"]);
$CAorg = 'MyApp';
$CAcountry = 'US';
$CAstate = 'CA';
$CAcity = 'Sacramento';
$confpath = $_SERVER['ARTICLE_CONF'];
$cadb = $_SERVER['ARTICLE_DB']; //will need to be reset
$days = 3650;
if (isset($_POST['pubkey'])) {
  $lock = null;
  if (!empty($_SERVER['ARTICLE_FLOCK'])) {
    $lock = fopen($cadb.'.lock', 'c');
    flock($lock, LOCK_EX);
  }
  $f = fopen($cadb, 'w'); //reset CA DB
  fclose($f);
  $uniqpath = tempnam($_SERVER['ARTICLE_TMP'].'/','certreq');
  $username = $_POST['username']; //Validate this first!
  $CAmail = ""; //This too! Make sure that's their email.
//If they're submitting a key, first save it to an spkac file
  $key = $_POST['pubkey'];
  if (preg_match('/\s/',$username) || preg_match('/\s/',$CAmail))
    die("Must not have whitespace in username or email!");
  $keyreq = "SPKAC=".str_replace(str_split(" \t\n\r\0\x0B"), '', $key);
  $keyreq .= "\nCN=".$username;
  if ($CAmail != "")
    $keyreq .= "\nemailAddress=".$CAmail;
  $keyreq .= "\n0.OU=".$CAorg." client certificate";
  $keyreq .= "\norganizationName=".$CAorg;
  $keyreq .= "\ncountryName=".$CAcountry;
  $keyreq .= "\nstateOrProvinceName=".$CAstate;
  $keyreq .= "\nlocalityName=".$CAcity;
  file_put_contents($uniqpath.".spkac", $keyreq);
//Now sign the file
  $command = "openssl ca -config ".$confpath." -days ".$days." -notext -batch -spkac ".$uniqpath.".spkac -out ".$uniqpath.".out 2>&1";
  $output = shell_exec($command);
  if ($lock) {
    flock($lock, LOCK_UN);
    fclose($lock);
  }
//And send it back to the user
  $length = filesize($uniqpath.".out");
  header('Last-Modified: '.date('r+b'));
  header('Accept-Ranges: bytes');
  header('Content-Length: '.$length);
  header('Content-Type: application/x-x509-user-cert');
  readfile($uniqpath.".out");
  unlink($uniqpath); unlink($uniqpath.".spkac"); unlink($uniqpath.".out");
  exit;
}
?>
<!DOCTYPE html>
<h1>Let's generate you a cert so you don't have to use a password!</h1>
 Hit the Generate button and then install the certificate it gives you in your browser.
 All modern browsers (except for Internet Explorer) should be compatible.
 <form method="post">
   <keygen name="pubkey" challenge="randomchars">
   The username I want: <input type="text" name="username" value="Alice">
   <input type="submit" name="createcert" value="Generate">
 </form>
 <strong>Wait a minute, then refresh this page over HTTPS to see your new cert in action!</strong>
